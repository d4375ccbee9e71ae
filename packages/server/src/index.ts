// Configuration, data-dir identity, logging, metrics and the HTTP listener of `weir server`.
export {
  CONFIG_FILE_ENV,
  CONFIG_FILE_FLAG,
  CLUSTER_ID_PATTERN,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  PROCESS_ROLES,
  type ProcessRole,
  SERVER_OPTIONS,
  type ServerConfig,
  type ServerOption,
  type ServerOptionName,
  type ServerOptionValues,
  envName,
  findServerOption,
  flagName,
} from './config/schema.js';
export {
  type ServerConfigSources,
  loadServerConfig,
  serverFlagOptions,
  serverFlagValues,
} from './config/load.js';
export {
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  configReferenceMarkdown,
  replaceConfigTable,
} from './config/docs.js';
export { type PropertyEntry, formatProperties, parseProperties } from './config/properties.js';
export {
  type EnsureMetaPropertiesOptions,
  META_PROPERTIES_FILE,
  type MetaProperties,
  ensureMetaProperties,
  readMetaProperties,
} from './meta-properties.js';
export {
  type CreateLoggerOptions,
  type LogDestination,
  type Logger,
  createLogger,
} from './logger.js';
export {
  type GaugeSource,
  type GaugeSpec,
  NODE_GAUGES,
  type NodeGauge,
  type ServerMetrics,
  createMetrics,
} from './metrics.js';
export {
  type HttpServer,
  type HttpServerOptions,
  type Readiness,
  startHttpServer,
} from './http/http-server.js';

// The node itself.
export { type NodeOptions, WeirNode } from './node.js';
export { type RunningServer, runServer } from './run-server.js';
