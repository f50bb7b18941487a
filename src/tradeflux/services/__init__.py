"""One module per microservice: each binds domain rules to the stream runtime."""
