"""The recipe: recordings -> LeRobot-format dataset -> fine-tuned model (the ``train`` extra:
pyarrow, datasets, mcap; torch and transformers for training itself)."""
