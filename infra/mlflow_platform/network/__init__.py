"""NetworkPolicies: the database and tracking server, training pods, and the day-two maintenance Jobs."""
