"""The classifier: model artifacts and their cards, decoding, the runner, and image variants.

Shared by serving (the batching engine) and by offline training and evaluation.
"""
