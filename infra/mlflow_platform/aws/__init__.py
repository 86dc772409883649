"""The AWS side: the artifact bucket and its policy, the least-privilege identity (IRSA or Pod Identity) and the
ServiceAccounts that carry it, tags, and the image repository.
"""
