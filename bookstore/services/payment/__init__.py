"""The payment service: charges and refunds, idempotent per order, via a simulated provider."""
