//! Millwright's store-and-forward disk buffer (issue 13, item 1): the forwarder's durable queue.
