"""Measuring what was learned; `python -m tfvgs.evaluate` is the command that runs them on a workdir.

    retrieval             recall@k of image <-> caption retrieval (paper 001 sec. 5)
    semantic_eval         isolated-word semantic accuracy and transfer accuracy (paper 000 sec. 6.2, 6.5)
    significance          chance levels, binomial tests and intervals beside every figure
    report_tables         the report: Tables 1-2 beside the paper's rows, plots
    gan_quality           FID/KID and the well-formed fraction of GAN samples on segmenter features
    caption_faithfulness  how often a segmenter-made caption is true of a rendered scene
"""
