"""The L2 order book: one home below the components that read it.

`OrderBook` holds one instrument's book in integer units over the `core.book` kernels; the
feeds own one per instrument and keep it synced (`feeds.sync.BookSync`). Everything else,
the paper venue, the feature engine and strategies, reads it through `BookView`, read-only.
Top of book sits in `OrderBook.top` at the slots `TOP_BID`, `TOP_BID_SIZE`, `TOP_ASK` and
`TOP_ASK_SIZE`; `bid_units`, `ask_units`, ... name the same values one at a time.
"""

from tradebot.book.order_book import OrderBook
from tradebot.book.view import TOP_ASK, TOP_ASK_SIZE, TOP_BID, TOP_BID_SIZE, BookView

__all__ = ["TOP_ASK", "TOP_ASK_SIZE", "TOP_BID", "TOP_BID_SIZE", "BookView", "OrderBook"]
