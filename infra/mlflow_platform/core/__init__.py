"""Building blocks every part shares: the typed config, names, labels, quantities, schedules, pod security,
pod env and Job pods, the namespace. Imports nothing from the other subpackages.
"""
