"""The bench's floor: an authenticated endpoint that inserts one row and nothing else.

Served only when TRADEMASTER_BENCH_FLOOR is on; the bench compares order entry against it.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from trademaster.models import BenchPing


class BenchFloorApi(APIView):
    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response:
        ping = BenchPing.objects.create(user_id=request.user.pk)
        return Response({"id": ping.pk}, status=201)
