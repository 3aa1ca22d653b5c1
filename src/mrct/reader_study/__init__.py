"""The blinded reader study: the questionnaire kit and the analysis of the readers' answers.

The study had two radiologists rate 240 MR and 240 CT images, half ground truth and half the best
model's output, as real or synthetic and for realism (1-4). ``design`` draws the images and their
order from the config seed, ``encoding`` re-encodes every image so that its bytes carry nothing
but its pixels, ``page`` writes the self-contained questionnaire, and ``kit`` ties them together
for ``rule reader_study``. The key (which image is which) goes only to ``key.csv``; ``analysis``
joins the readers' exported answers with it (Tables V and VI).
"""
