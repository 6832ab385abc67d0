"""What a night can afford before it spends anything: the models' memory plan."""
