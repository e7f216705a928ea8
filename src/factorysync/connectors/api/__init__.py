"""REST API sources over HTTP(S), with httpx.

module      holds
connector   ApiConnector: placeholders filled, pages read, records as batches
config      the connection_config model; how a cursor goes into a request
client      requests, retries, redirects, rate limits, failures mapped to errors
auth        the auth block: bearer, basic, api_key, OAuth2 client credentials
pagination  offset, page, cursor, next_url and link_header paging
safety      where requests may go (FACTORYSYNC_API_ALLOWED_HOSTS, no link-local or
            metadata addresses), checked before each connection
secrets     the connection's secrets kept out of messages and logs
"""

from factorysync.connectors.api.config import ApiConfig
from factorysync.connectors.api.connector import ApiConnector

__all__ = ["ApiConfig", "ApiConnector"]
