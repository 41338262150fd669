"""Markets: one `MarketAdapter` per market (`nem_adapter.NemAdapter`, `ercot_adapter.ErcotAdapter`),
the `autobidder.market.v1` market API (`exchange_client`) and the simulated exchange behind it
(`exchange_core`, `exchange_server`). See docs/markets.md."""
