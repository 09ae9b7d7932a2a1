"""Benchmarks of bert-hub against tf-models' reference exporter (python -m benchmarks.run)."""
