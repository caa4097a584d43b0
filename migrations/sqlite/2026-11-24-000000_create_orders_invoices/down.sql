DROP TABLE invoice_counters;
DROP TABLE invoices;
DROP TABLE order_lines;
DROP TABLE orders;
