"""Trading: brokers (paper, shadow, Tradovate) behind one interface; the runner, order
manager, risk monitor, kill actions and reconcile service build on them."""
