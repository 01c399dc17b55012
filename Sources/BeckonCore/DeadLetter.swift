/// A refused message: where it came from and why. The bytes travel separately, untouched.
public struct DeadLetter: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Kafka message timestamp, epoch milliseconds.
    public var kafkaTimestamp: Int64?
    public var failure: DecodeFailure
    public var payloadBytes: Int

    public init(topic: String, partition: Int32, offset: Int64, kafkaTimestamp: Int64?, failure: DecodeFailure, payloadBytes: Int) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.kafkaTimestamp = kafkaTimestamp
        self.failure = failure
        self.payloadBytes = payloadBytes
    }
}
