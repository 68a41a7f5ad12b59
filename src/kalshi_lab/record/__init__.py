"""Recording Kalshi's WebSocket order-book stream into data/recorded.

Kalshi keeps no order-book history: a book exists later only if someone recorded it live.
:mod:`kalshi_lab.data.stream_store` stores the stream's messages as segment files in the
recordings directory (an input of the parquet stage, apart from the fetch's output, which the
fetch replaces whole); :mod:`kalshi_lab.record.recorder` feeds them from a message iterator
(the ``kalshi-lab record`` command's ``KalshiStream``); the parquet stage rebuilds the
order-book table from them (:mod:`kalshi_lab.data.book_rebuild`).
"""
