"""Executes runs: prompt building, the model/tool loop, and the stream events it produces."""
