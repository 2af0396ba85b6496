/** The page shown when a request cannot be answered: its status and the reason, escaped like everything else. */
import { type Html, html } from '../html.js';

/** The live part of an error page. */
export function problemContent(status: number, message: string, back: string | null): Html {
  return html`<h1>${status === 404 ? 'Not found' : status === 403 ? 'Refused' : 'Something went wrong'}</h1>
    <div class="problem" role="alert" data-http-status="${status}">${message}</div>
    ${back === null ? null : html`<p><a href="${back}">back</a></p>`}`;
}
