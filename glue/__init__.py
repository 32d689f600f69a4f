"""GLUE tasks: processors (TSV -> examples), features (examples -> ids), metrics, downloads."""
from glue.features import Batch, InputFeatures, TaskFeatures, convert_examples_to_features, pad_batch, truncate_seq_pair
from glue.metrics import compute_metrics, main_metric
from glue.processors import PROCESSORS, TEST_SET, DataProcessor, InputExample, get_processor

__all__ = ["PROCESSORS", "TEST_SET", "Batch", "DataProcessor", "InputExample", "InputFeatures", "TaskFeatures", "compute_metrics",
           "convert_examples_to_features", "get_processor", "main_metric", "pad_batch", "truncate_seq_pair"]
