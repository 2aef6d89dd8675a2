"""The shop's jobs; goodjob_mp's Django app imports this module from every installed app."""

import goodjob_mp as gj
from shop.models import Order


@gj.job(queue="receipts")
def send_receipt(order_id: int) -> None:
    # Runs in a worker thread with its own Django connection.
    Order.objects.filter(id=order_id).update(receipt_sent=True)
