"""Recording Kalshi's WebSocket order-book stream into the raw store.

Kalshi keeps no order-book history: a book exists later only if someone recorded it live.
:mod:`kalshi_lab.record.segments` stores the stream's messages as segment files beside the
fetch's raw files; :mod:`kalshi_lab.record.recorder` feeds them from a message iterator (the
``kalshi-lab record`` command's ``KalshiStream``); the parquet stage rebuilds the order-book
table from them (:mod:`kalshi_lab.data.book_rebuild`).
"""
