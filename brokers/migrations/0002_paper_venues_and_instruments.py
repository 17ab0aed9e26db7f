"""The default simulated market: three paper venues with different terms, and their symbols."""

from decimal import Decimal as D

from django.db import migrations

VENUES = [
    # name, asset classes, spread bps, depth levels, size factor, commission bps, per unit, minimum
    ("paper-equities-a", ["EQUITY"], D("2"), 5, D("1"), D("0"), D("0.005"), D("1.00")),
    ("paper-equities-b", ["EQUITY"], D("6"), 3, D("0.6"), D("0"), D("0"), D("0")),
    ("paper-crypto", ["CRYPTO"], D("8"), 5, D("1"), D("10"), D("0"), D("0")),
]

INSTRUMENTS = [
    # symbol, asset class, tick, lot, displayed size per level, volatility in ticks, starting mid
    ("AAPL", "EQUITY", D("0.01"), D("1"), D("200"), 3, D("228.50")),
    ("MSFT", "EQUITY", D("0.01"), D("1"), D("150"), 4, D("415.20")),
    ("NVDA", "EQUITY", D("0.01"), D("1"), D("400"), 3, D("142.80")),
    ("TSLA", "EQUITY", D("0.01"), D("1"), D("150"), 5, D("251.30")),
    ("AMZN", "EQUITY", D("0.01"), D("1"), D("200"), 3, D("201.10")),
    ("GOOGL", "EQUITY", D("0.01"), D("1"), D("200"), 3, D("171.40")),
    ("META", "EQUITY", D("0.01"), D("1"), D("100"), 5, D("583.60")),
    ("SPY", "EQUITY", D("0.01"), D("1"), D("500"), 2, D("598.70")),
    ("BRK.B", "EQUITY", D("0.01"), D("1"), D("100"), 3, D("472.30")),
    ("BTC/USD", "CRYPTO", D("0.01"), D("0.0001"), D("0.5"), 400, D("95000.00")),
    ("ETH/USD", "CRYPTO", D("0.01"), D("0.001"), D("5"), 60, D("3450.00")),
    ("SOL/USD", "CRYPTO", D("0.01"), D("0.01"), D("100"), 8, D("205.00")),
]


def forwards(apps, schema_editor):
    PaperVenue = apps.get_model("brokers", "PaperVenue")
    Instrument = apps.get_model("brokers", "Instrument")
    for name, classes, spread, depth, size, bps, per_unit, minimum in VENUES:
        PaperVenue.objects.update_or_create(
            name=name,
            defaults={
                "asset_classes": classes, "spread_bps": spread, "depth_levels": depth, "size_factor": size,
                "commission_bps": bps, "commission_per_unit": per_unit, "min_commission": minimum,
            },
        )
    for symbol, asset_class, tick, lot, size, vol, mid in INSTRUMENTS:
        Instrument.objects.update_or_create(
            symbol=symbol,
            defaults={"asset_class": asset_class, "tick_size": tick, "lot_size": lot, "base_size": size,
                      "volatility_ticks": vol, "mid": mid},
        )


def backwards(apps, schema_editor):
    apps.get_model("brokers", "Instrument").objects.filter(symbol__in=[i[0] for i in INSTRUMENTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("brokers", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
