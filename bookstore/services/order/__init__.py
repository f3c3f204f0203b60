"""The order service: it turns a basket into an order by orchestrating other services.

Placing an order touches data that four services own: catalog knows the prices, inventory
the stock, payment the money, and this service the order itself. No database transaction
can span them, so the order service *orchestrates*: it calls each service in turn and, when
a later step fails, calls the earlier ones again to undo what they did (release the stock,
refund the charge). Those undo calls are called compensations.

In week 6 the orchestration was a plain sequential function: easy to read top to bottom,
and honest about its weak spot. If this process died between two steps, nobody finished the
compensation, and the order stayed PENDING for good. Since week 7 ``flow.place_order`` runs
the same steps as a saga (``saga.OrderSaga`` on ``bookstore.saga``): each move is recorded
in a log in this service's database before the next, so a restarted service resumes or
undoes every order it left half-done (``__main__`` starts that recovery in the background).

The modules: ``flow`` (validate, price, run the saga, answer), ``saga`` (the steps and
their compensations, recovery), ``clients`` (the stubs it calls), ``store`` (orders),
``servicer`` (the gRPC edge), ``crash`` (a fault-injection aid for crash tests), and
``plain_flow``: week 6's sequential flow, kept so that a benchmark can measure the saga
against it in the same run (``BOOKSTORE_ORDER_FLOW=plain``).

Why every outgoing call carries a deadline: an RPC to a hung service otherwise waits
forever, holding one of this server's worker threads while the learner's request hangs too.
Enough hung calls and the order service stops answering altogether, although it has nothing
wrong with it: one slow service has taken down the one that calls it. A deadline turns
"forever" into a DEADLINE_EXCEEDED we can compensate and report. It also brings the
hardest case of distributed systems into view: after a timeout we do not know whether the
other side did the work. The flow answers that by calling idempotent compensations that are
safe either way.

When not to orchestrate: if a step's outcome does not have to be known before answering the
customer (an e-mail, say), publish an event instead (week 9) and let the consumer cope.
"""
