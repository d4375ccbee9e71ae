// A topic-partition and the string that keys maps by it. Topic names hold only
// [a-zA-Z0-9._-] (Kafka's `Topic.validate`), so `topic:partition` is unambiguous.

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export function topicPartitionKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}
