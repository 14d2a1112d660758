"""Gate logic, one module per suite: predictions and options in, gate results and report payloads out."""
