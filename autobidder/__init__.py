"""Autobidder: trades grid batteries and virtual power plants in electricity markets.

The domain core: value types, units and clocks, configuration, the fact store, the queue
client and the local stack launcher. Nothing here imports the stage packages
(`forecasting`, `optimization`, `market_adapters`, `workflows`, `worker`).
"""

__version__ = "0.1.0"
