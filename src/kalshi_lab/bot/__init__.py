"""The trading bot (``kalshi-bot``): backtest, paper and live modes over one execution layer.

Modules: ``cli`` (the command), ``session`` (a backtest run, or paper/live trading cycles),
``signals`` (the trained model's predictions for now, on features built by the pipeline's own
code), ``venue`` (base URLs, the client, the venue's clock), ``report`` (the session report).
"""
