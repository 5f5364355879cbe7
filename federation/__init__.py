"""The ActivityPub protocol library used by xnode.

It never imports ``xnode``: lookups and storage are injected by the caller.
"""
