/** Errors the dashboard answers with a status code of their own. */
import { SteppingError } from '../errors.js';

/** A request the dashboard refuses: bad filter values, a forbidden action, a wrong Host. */
export class DashboardRequestError extends SteppingError {
  override name = 'DashboardRequestError';
  /** The HTTP status to answer with (400, 403, 404, 405, 413, 415). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
