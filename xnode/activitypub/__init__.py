"""Where the node plugs its accounts and posts into the ActivityPub library (``federation``).

``urls`` names our objects, ``serialize`` turns them into ActivityStreams JSON,
and the rest (endpoints, inbox processing, delivery) builds on those two.
"""
