"""Writes the bundled sample files. Run: python samples/generate.py (output is committed)."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent
HEADERS = ["name", "phone", "country", "network", "amount", "currency", "method", "bank_code",
           "bank_name", "account_number", "till_number", "paybill_number", "account_reference",
           "reference", "narration", "department"]

CLEAN = [
    ["Wanjiru Kamau", "+254712345678", "KE", "MPESA", "1500", "KES", "mobile_money", "", "", "", "", "", "", "NOV-001", "Field stipend", "Ops"],
    ["Otieno Ochieng", "+254722000111", "KE", "MPESA", "2300", "KES", "mobile_money", "", "", "", "", "", "", "NOV-002", "Field stipend", "Ops"],
    ["Achieng Atieno", "+254733123456", "KE", "AIRTEL", "1800", "KES", "mobile_money", "", "", "", "", "", "", "NOV-003", "Transport", "Ops"],
    ["Kiprono Kiptoo", "+254700000011", "KE", "MPESA", "900", "KES", "mobile_money", "", "", "", "", "", "", "NOV-004", "Sandbox: ends FAILED", "Ops"],
    ["Mwangi Njoroge", "+254700000013", "KE", "MPESA", "650", "KES", "mobile_money", "", "", "", "", "", "", "NOV-005", "Sandbox: ends CANCELLED", "Ops"],
    ["Corner Shop Ltd", "", "KE", "", "4200", "KES", "till", "", "", "", "174379", "", "", "NOV-006", "Supplies", "Admin"],
    ["Nairobi Water", "", "KE", "", "3100", "KES", "paybill", "", "", "", "", "888880", "ACC-10023", "NOV-007", "Office water", "Admin"],
    ["KPLC Prepaid", "", "KE", "", "5000", "KES", "paybill", "", "", "", "", "888888", "54401234567", "NOV-008", "Electricity", "Admin"],
    ["Njeri Wambui", "", "KE", "", "12500", "KES", "bank", "68", "Equity Bank", "0123456789012", "", "", "", "NOV-009", "Contract fee", "Finance"],
    ["Kamau Mutua", "", "KE", "", "9800", "KES", "bank", "01", "KCB", "1103456789", "", "", "", "NOV-010", "Contract fee", "Finance"],
    ["Okello Peter", "+256772123456", "UG", "MTN", "45000", "UGX", "mobile_money", "", "", "", "", "", "", "NOV-011", "Field stipend", "Ops"],
    ["Nakato Sarah", "+256701234567", "UG", "AIRTEL", "38000", "UGX", "mobile_money", "", "", "", "", "", "", "NOV-012", "Field stipend", "Ops"],
    ["Ssemwogerere John", "+256700000011", "UG", "AIRTEL", "20000", "UGX", "mobile_money", "", "", "", "", "", "", "NOV-013", "Sandbox: ends FAILED", "Ops"],
    ["Ama Mensah", "+233241234567", "GH", "MTN", "350.50", "GHS", "mobile_money", "", "", "", "", "", "", "NOV-014", "Field stipend", "Ops"],
    ["Kwame Boateng", "+233201234567", "GH", "VODAFONE", "275.00", "GHS", "mobile_money", "", "", "", "", "", "", "NOV-015", "Transport", "Ops"],
    ["Abena Owusu", "+233700000012", "GH", "MTN", "120.25", "GHS", "mobile_money", "", "", "", "", "", "", "NOV-016", "Sandbox: ends FAILED (limit)", "Ops"],
    ["Juma Mwinyi", "+255754123456", "TZ", "VODACOM", "52000", "TZS", "mobile_money", "", "", "", "", "", "", "NOV-017", "Field stipend", "Ops"],
    ["Neema Mushi", "+255784123456", "TZ", "AIRTEL", "48000", "TZS", "mobile_money", "", "", "", "", "", "", "NOV-018", "Field stipend", "Ops"],
    ["Thandiwe Nkosi", "", "ZA", "", "1250.50", "ZAR", "bank", "250655", "FNB", "62000000001", "", "", "", "NOV-019", "Consulting", "Finance"],
    ["Sipho Dlamini", "", "ZA", "", "980.00", "ZAR", "bank", "470010", "Capitec", "1234567890", "", "", "", "NOV-020", "Consulting", "Finance"],
    ["Lerato Mokoena", "", "ZA", "", "2100.75", "ZAR", "bank", "632005", "ABSA", "4071234567", "", "", "", "NOV-021", "Consulting", "Finance"],
    ["Chebet Langat", "+254700000021", "KE", "MPESA", "1200", "KES", "mobile_money", "", "", "", "", "", "", "NOV-022", "Sandbox: slow success", "Ops"],
]

# Every repair and every error of the validation rules, one or two per row.
MESSY_HEADERS = ["Full Name", "Mobile No", "Country", "Network", "Amount", "Currency", "Payment Method",
                 "Bank Code", "Bank Name", "Account No", "Till", "Paybill", "Account Reference", "Ref", "Notes"]
MESSY = [
    ["Wanjiru Kamau", "712345678", "KE", "", "KES 1 500", "KES", "", "", "", "", "", "", "", "M-1", "lost leading zero"],
    ["Otieno Ochieng", "7.22000111E+08", "Kenya", "", "1,500.00", "KES", "mobile money", "", "", "", "", "", "", "M-2", "scientific phone"],
    ["Achieng\u00a0Atieno", "+254 733-123-456", "KEN", "airtel", "1800", "", "", "", "", "", "", "", "", "M-3", "NBSP, dashes, no currency"],
    ["Okello Peter", "+256772123456", "UG", "MTN", "45,000", "UGX", "", "", "", "", "", "", "", "M-4", "thousands separator"],
    ["Bad Phone", "0712", "KE", "", "100", "KES", "", "", "", "", "", "", "", "M-5", "too short"],
    ["Rounded Phone", "2.54712E+11", "KE", "", "100", "KES", "", "", "", "", "", "", "", "M-6", "digits lost"],
    ["Wrong Country Phone", "+256772000999", "KE", "", "100", "KES", "", "", "", "", "", "", "", "M-7", "UG number in KE row"],
    ["Fraction KES", "+254722000222", "KE", "", "100.50", "KES", "", "", "", "", "", "", "", "M-8", "KES is whole units"],
    ["Zero", "+254722000333", "KE", "", "0", "KES", "", "", "", "", "", "", "", "M-9", "zero amount"],
    ["Negative", "+254722000444", "KE", "", "-50", "KES", "", "", "", "", "", "", "", "M-10", "negative"],
    ["Wrong Currency", "+254722000555", "KE", "", "100", "UGX", "", "", "", "", "", "", "", "M-11", "UGX in Kenya"],
    ["No Network GH", "+233241234999", "GH", "", "10.00", "GHS", "", "", "", "", "", "", "", "M-12", "network required"],
    ["Bad Network", "+256772000888", "UG", "SAFARICOM", "1000", "UGX", "", "", "", "", "", "", "", "M-13", "network not in UG"],
    ["Till in UG", "", "UG", "", "1000", "UGX", "till", "", "", "", "174379", "", "", "M-14", "till only KE"],
    ["Paybill no acc", "", "KE", "", "1000", "KES", "paybill", "", "", "", "", "888880", "", "M-15", "needs account ref"],
    ["Bank bad code", "", "KE", "", "1000", "KES", "bank", "999", "", "0123456789", "", "", "", "M-16", "unknown bank"],
    ["ZA no bank name", "", "ZA", "", "100.00", "ZAR", "bank", "250655", "", "62000000002", "", "", "", "M-17", "ZA needs bank name"],
    ["Bank in GH", "", "GH", "", "100.00", "GHS", "bank", "01", "", "0123456789", "", "", "", "M-18", "bank only KE/ZA"],
    ["Okello Peter", "+256772123456", "UG", "MTN", "45,000", "UGX", "", "", "", "", "", "", "", "M-4", "duplicate reference M-4"],
    ["Same Payee", "+254712345678", "KE", "", "200", "KES", "", "", "", "", "", "", "", "M-20", "same payee as M-1"],
    ["", "+254722000666", "KE", "", "100", "KES", "", "", "", "", "", "", "", "M-21", "no name"],
    ["Weird method", "+254722000777", "KE", "", "100", "KES", "cheque", "", "", "", "", "", "", "M-22", "unknown method"],
    ["Narnia", "+254722000888", "Narnia", "", "100", "KES", "", "", "", "", "", "", "", "M-23", "unknown country"],
    ["Padded bank", "", "KE", "", "2500", "KES", "bank", "1", "KCB", "1103456790", "", "", "", "M-24", "bank code lost its 0"],
    ["Comma decimal", "+254722000999", "KE", "", "1500,5", "KES", "", "", "", "", "", "", "", "M-25", "ambiguous comma"],
    ["Same Payee", "+254712345678", "KE", "", "200", "KES", "", "", "", "", "", "", "", "M-20", "same payee as M-1"],
    ["Currency in amount", "+254722000123", "KE", "", "UGX 500", "KES", "", "", "", "", "", "", "", "M-27", "UGX amount in KES row"],
]


def write_csv(path: Path, headers: list[str], rows: list[list[str]], title: str | None = None) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if title:
            writer.writerow([title])
        writer.writerow(headers)
        writer.writerows(rows)


def write_xlsx(path: Path, headers: list[str], rows: list[list[str]], numeric_phones: bool = False) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Payouts"
    ws.append(headers)
    for row in rows:
        ws.append(row)
    for r in range(2, len(rows) + 2):
        for c in range(1, len(headers) + 1):
            cell = ws.cell(row=r, column=c)
            cell.number_format = "@"
            cell.data_type = "s"
    wb.save(path)


def main() -> None:
    write_csv(HERE / "payouts.csv", HEADERS, CLEAN)
    write_xlsx(HERE / "payouts.xlsx", HEADERS, CLEAN)
    write_csv(HERE / "messy.csv", MESSY_HEADERS, MESSY, title="ACME Ltd - November payouts (draft)")
    data = (HERE / "messy.csv").read_text(encoding="utf-8")
    (HERE / "messy-semicolon-bom.csv").write_bytes(b"\xef\xbb\xbf" + data.replace(",", ";").encode("utf-8"))


if __name__ == "__main__":
    main()
