"""Market statistics on instruments (for impact estimates and VWAP) and the broker latency field."""

from decimal import Decimal as D

from django.db import migrations, models

# symbol: (average daily volume, daily volatility in bps)
STATS = {
    "AAPL": (D("55000000"), D("140")),
    "MSFT": (D("20000000"), D("130")),
    "NVDA": (D("250000000"), D("280")),
    "TSLA": (D("95000000"), D("350")),
    "AMZN": (D("40000000"), D("180")),
    "GOOGL": (D("25000000"), D("170")),
    "META": (D("14000000"), D("220")),
    "SPY": (D("60000000"), D("80")),
    "BRK.B": (D("3500000"), D("90")),
    "BTC/USD": (D("25000"), D("300")),
    "ETH/USD": (D("400000"), D("380")),
    "SOL/USD": (D("9000000"), D("500")),
}


def forwards(apps, schema_editor):
    Instrument = apps.get_model("brokers", "Instrument")
    for symbol, (adv, vol) in STATS.items():
        Instrument.objects.filter(symbol=symbol).update(average_daily_volume=adv, daily_volatility_bps=vol)


class Migration(migrations.Migration):
    dependencies = [("brokers", "0003_brokeraccount_day_trading_policy_and_more")]
    operations = [
        migrations.AddField(
            model_name="brokeraccount",
            name="latency_ms",
            field=models.PositiveIntegerField(default=0, help_text="recent median round trip to the broker"),
        ),
        migrations.AddField(
            model_name="instrument",
            name="average_daily_volume",
            field=models.DecimalField(decimal_places=8, default=D(1000000), max_digits=18),
        ),
        migrations.AddField(
            model_name="instrument",
            name="daily_volatility_bps",
            field=models.DecimalField(decimal_places=4, default=D(150), max_digits=10),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
