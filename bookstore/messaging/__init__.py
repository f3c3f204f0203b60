"""Week 9: reliable messaging with RabbitMQ.

(The package overview is written with the week 9 notebook.)
"""
