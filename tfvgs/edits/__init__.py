"""Targeted GAN edits (paper 000 secs. 4.2, 5.5, 5.6): concept clusters of the audio-visual embedding, the GAN h4
units that draw each concept, and how often an edit changes what a caption would say.

    concept_clusters  co-occurrence clustering of embedding units, s(I|w_k), cluster scores
    unit_ranking      GAN-Dissection ranking of h4 units by IoU with a segmentation
    edit_success      which attributes an edit changed, success rates, naming clusters by attribute

The numerical pieces take numpy arrays and hold no Keras models; the training stages call them.
"""
