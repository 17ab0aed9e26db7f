from django.urls import path

from brokers import views

app_name = "brokers"

urlpatterns = [
    path("schwab/<int:account_id>/connect/", views.schwab_connect, name="schwab-connect"),
    path("schwab/callback/", views.schwab_callback, name="schwab-callback"),
]
