"""Speed and memory benchmarks (`make bench`): each prints a table. Not shipped in the training image."""
