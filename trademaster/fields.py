"""Model fields shared by the apps."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import models


class ExactDecimalField(models.Field):
    """A Decimal stored without rounding, whatever its scale: NUMERIC on PostgreSQL, TEXT on SQLite.

    For derived amounts (products of two DECIMAL(18,8) values, running totals) that must come back
    exactly as written. SQLite keeps DECIMAL columns as binary floats, so there it is text. Not for
    SQL arithmetic; compare and sum these in Python.
    """

    description = "Exact decimal"

    def db_type(self, connection) -> str:
        return "numeric" if connection.vendor == "postgresql" else "text"

    def get_internal_type(self) -> str:
        return "TextField"  # no backend converter: from_db_value does the work

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValidationError(f"{value!r} is not a decimal number.") from None

    def from_db_value(self, value, expression, connection):
        return self.to_python(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = self.to_python(value)
        if value is None or connection.vendor == "postgresql":
            return value
        return f"{value:f}"
