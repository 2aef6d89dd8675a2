import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from shop.jobs import send_receipt
from shop.models import Order


class OrderRefused(Exception):
    pass


@csrf_exempt
def create_order(request: HttpRequest) -> JsonResponse:
    """POST {"email": ...}: create an order and enqueue its receipt in one transaction; with
    ``"fail": true`` the transaction rolls back after the enqueue, and so no job exists."""
    body = json.loads(request.body or b"{}")
    try:
        with transaction.atomic():
            order = Order.objects.create(email=body.get("email", "someone@example.com"))
            job = send_receipt.perform_later(order.id)
            if body.get("fail"):
                raise OrderRefused("refused after enqueue")
    except OrderRefused:
        return JsonResponse({"error": "refused"}, status=422)
    return JsonResponse({"order": order.id, "job": str(job.id)}, status=201)
