export {
  type AssignReplicasRequest,
  type AssignableBroker,
  type BrokerLoad,
  assignReplicas,
  assignableBrokers,
  brokerLoad,
} from './replica-assignment.js';
export {
  type CreateTopicRequest,
  MAX_TOPIC_NAME_LENGTH,
  TOPIC_CONFIGS,
  type TopicConfigDef,
  type TopicConfigName,
  type TopicConfigType,
  collidesWith,
  isTopicConfigName,
  validateCreateTopic,
  validateTopicConfig,
  validateTopicConfigs,
  validateTopicName,
} from './topic-validation.js';
