"""A synthetic local authority: every feed in every layout, with noise and ground truth."""
