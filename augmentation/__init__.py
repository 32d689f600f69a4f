"""TinyBERT's data augmentation of GLUE training sets: word candidates, sampling, word vectors."""
