"""faust's Kafka transport, with the consumer's fetch wait chosen here.

faust builds its aiokafka consumer with fetch_max_wait_ms=1500 and has no setting for it.
A Kafka broker answers a waiting fetch as soon as a message arrives, so there the wait
costs nothing; the embedded broker of `make run` (Tansu) answers only when the wait runs
out, so every event waited half of it on average at each consumer hop. Measured with
aiokafka against Tansu, a message produced into a waiting fetch arrived after 414 ms at
the median with 1,500 ms, 140 with 500, 25 with 100 and 6 with 20. At FETCH_WAIT_MS an
idle consumer sends 20 fetches a second (each one small request over its open
connection); a busy one is answered at once either way, so throughput does not change.
"""

from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_WAIT_MS = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start(), which builds the fetcher with it.
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose consumers wait FETCH_WAIT_MS for new messages."""

    Consumer = _Consumer
