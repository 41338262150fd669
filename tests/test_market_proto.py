"""The market contract: versioned package, the MarketGateway calls, and generated code in step."""

from __future__ import annotations

from autobidder.protos import is_stale
from protogen.market.v1 import market_pb2 as pb


def test_generated_code_matches_the_contracts() -> None:
    stale = is_stale()
    assert stale == [], f"protogen/ differs from a fresh generation in {stale}: run `make proto`"


def test_market_gateway_calls() -> None:
    service = pb.DESCRIPTOR.services_by_name["MarketGateway"]
    assert pb.DESCRIPTOR.package == "autobidder.market.v1"
    methods = {m.name: m for m in service.methods}
    assert {"SubmitBids", "GetAwards", "StreamMarketData", "GetMarketData", "Health"} <= set(methods)
    stream = methods["StreamMarketData"]
    assert stream.server_streaming and not stream.client_streaming
    assert not methods["SubmitBids"].server_streaming


def test_bids_are_price_quantity_bands_per_product() -> None:
    offer = pb.ProductOffer.DESCRIPTOR
    assert offer.fields_by_name["bands"].message_type is pb.Band.DESCRIPTOR
    assert offer.fields_by_name["product"].enum_type is pb.Product.DESCRIPTOR
    assert set(pb.Band.DESCRIPTOR.fields_by_name) == {"price_per_mwh", "quantity_mw"}
    assert (
        pb.MarketAward.DESCRIPTOR.fields_by_name["settlement"].message_type
        is pb.IntervalSettlement.DESCRIPTOR
    )
