"""Training: the loop and the jobs the Train page launches."""
