"""LongBench-Write style evaluation: length score, a local quality judge, throughput, plots."""
