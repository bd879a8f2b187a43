"""Walk-forward evaluation of every stage against the market (`kwx evaluate`)."""
