"""A small vendored BERT package: configuration, model, tokenizer, optimiser, downloads."""
