// Checks shared by every options object of the SDK: a wrong value is INVALID_CONFIG with a
// message that names the option, the allowed range and the default.

import { ErrorCode, WeirError } from '@weir/protocol';

export function invalidConfig(detail: string): WeirError {
  return new WeirError(ErrorCode.INVALID_CONFIG, detail);
}

/** `value`, or `defaultValue` when absent; a whole number within [min, max]. */
export function wholeNumber(
  name: string,
  value: unknown,
  defaultValue: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return defaultValue;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidConfig(
      `${name} must be a whole number from ${min} to ${max}, got ${typeof value === 'number' ? value : typeof value}; the default is ${defaultValue}`,
    );
  }
  return value;
}
