"""The blinded reader study: the questionnaire kit and the analysis of the readers' answers."""
