"""Data transforms the stages share: splits, user shards, the as-of filter, model inputs, the item catalog and explanations."""
