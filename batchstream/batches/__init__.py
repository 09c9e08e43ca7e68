"""`--via batches`: the Message Batches API, at half the price, with the same results file and resume."""
