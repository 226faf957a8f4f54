"""Analysis probes of tuned checkpoints vs. the base (after the study's `scripts/analysis/` in
jessemelpolio/LMM_CL):

- :mod:`lmmcl.probes.numbers` — number-token probe (counting bias): mass and max probability of
  number tokens at every greedily generated step, on counting and on held-out prompts.
- :mod:`lmmcl.probes.layers` — per decoder layer, ‖W_t·h_t − W_b·h_b‖ of the attention and MLP
  branch outputs, averaged over the answer positions of the image-expanded sequence.
"""
